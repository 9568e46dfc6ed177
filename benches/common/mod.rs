//! What every bench shares: one row type, one table printer, `--quick` / `--json`, mp and
//! CPython interleaved round by round, CPU placements for latency rows, peak-RSS readers,
//! driving python3, and the run's files under `target/mp-bench/` (one `<bench>.jsonl` per
//! bench, `table.md` and `speedup.svg` rebuilt from all of them after each bench).
//!
//! A bench is `let mut rep = Report::new("queue");`, then `rep.add(Row { .. })` per
//! workload (printed as it is measured), then `rep.finish()`.
#![allow(dead_code)] // each bench uses a subset

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

// ---------------------------------------------------------------------------------
// flags

/// The flags after `cargo bench --`: `--quick` (a smoke run: few iterations, seconds per
/// bench) and `--json` (one JSON object per row on stdout instead of the tables).
/// Anything else (cargo passes `--bench`) is ignored.
#[derive(Clone, Copy, Debug)]
pub struct Opts {
    pub quick: bool,
    pub json: bool,
}

pub fn opts() -> Opts {
    static O: OnceLock<Opts> = OnceLock::new();
    *O.get_or_init(|| {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let has = |f: &str| args.iter().any(|a| a == f);
        Opts {
            quick: has("--quick") || std::env::var_os("MP_BENCH_QUICK").is_some(),
            json: has("--json"),
        }
    })
}

/// `full` in a full run, `quick` under `--quick`.
pub fn pick<T>(full: T, quick: T) -> T {
    if opts().quick {
        quick
    } else {
        full
    }
}

/// Rounds of an interleaved measurement: 5 in a full run, 1 under `--quick`.
pub fn rounds() -> usize {
    pick(5, 1)
}

// ---------------------------------------------------------------------------------
// rows and the table

/// One workload of one area: mp's median, CPython's on the same workload, the OS floor
/// where one is defined.
#[derive(Clone, Debug)]
pub struct Row {
    /// "processes", "connections", "queues", "sync", "shared memory", "codec", "pools", …
    pub area: &'static str,
    pub workload: String,
    /// "µs", "ms", "ns", "M/s", "GB/s", "MiB", "x"
    pub unit: &'static str,
    pub mp: f64,
    pub cpython: Option<f64>,
    pub floor: Option<f64>,
    /// times and sizes: lower is better; rates and speedups: higher is better
    pub lower_is_better: bool,
}

impl Row {
    /// How many times faster (or smaller) mp is than CPython (> 1: mp wins).
    pub fn speedup(&self) -> Option<f64> {
        let p = self.cpython?;
        Some(if self.lower_is_better {
            p / self.mp
        } else {
            self.mp / p
        })
    }
    /// How many times the floor's cost mp's costs (1 = at the floor, 2 = twice the floor).
    pub fn vs_floor(&self) -> Option<f64> {
        let f = self.floor?;
        Some(if self.lower_is_better {
            self.mp / f
        } else {
            f / self.mp
        })
    }
    fn json(&self) -> String {
        serde_json::json!({
            "area": self.area,
            "workload": self.workload,
            "unit": self.unit,
            "mp": finite(self.mp),
            "cpython": self.cpython.and_then(finite),
            "floor": self.floor.and_then(finite),
            "lower_is_better": self.lower_is_better,
            "speedup_vs_cpython": self.speedup().and_then(finite),
            "vs_floor": self.vs_floor().and_then(finite),
            "quick": opts().quick,
        })
        .to_string()
    }
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

const W: usize = 64;

fn num(x: Option<f64>) -> String {
    match x {
        None => "—".into(),
        Some(v) if !v.is_finite() => "n/a".into(),
        Some(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) if v.abs() >= 10.0 => format!("{v:.1}"),
        Some(v) if v.abs() >= 0.1 => format!("{v:.2}"),
        Some(v) => format!("{v:.4}"),
    }
}

fn ratio(x: Option<f64>) -> String {
    x.and_then(finite).map_or("—".into(), |v| {
        if v >= 10.0 {
            format!("{v:.0}×")
        } else {
            format!("{v:.2}×")
        }
    })
}

fn header(area: &str) -> String {
    format!(
        "\n### {area}\n\n| {:<W$} | {:>5} | {:>9} | {:>9} | {:>9} | {:>10} | {:>9} |\n|{:-<w2$}|{:->7}|{:->11}|{:->11}|{:->11}|{:->12}|{:->11}|",
        "workload",
        "unit",
        "mp",
        "CPython",
        "floor",
        "vs CPython",
        "vs floor",
        "",
        ":",
        ":",
        ":",
        ":",
        ":",
        ":",
        w2 = W + 2
    )
}

fn line(r: &Row) -> String {
    // markdown-safe: pipes in a workload name would split the cell
    let name = r.workload.replace('|', "/");
    format!(
        "| {name:<W$} | {:>5} | {:>9} | {:>9} | {:>9} | {:>10} | {:>9} |",
        r.unit,
        num(Some(r.mp)),
        num(r.cpython),
        num(r.floor),
        ratio(r.speedup()),
        ratio(r.vs_floor()),
    )
}

/// The rows of one bench: printed as they are added (a table per area, or JSON lines),
/// saved by [`Report::finish`].
pub struct Report {
    bench: &'static str,
    rows: Vec<Row>,
    notes: Vec<(&'static str, String)>,
    started: std::time::Instant,
}

impl Report {
    pub fn new(bench: &'static str) -> Report {
        if std::env::var_os("MP_BENCH_RENDER").is_some() {
            // redraw table.md and speedup.svg from the last run's files, measure nothing
            render(&out_dir());
            println!("rendered {}", out_dir().join("speedup.svg").display());
            std::process::exit(0);
        }
        if !opts().json {
            println!(
                "\n## {bench}: medians; mp and CPython {}interleaved; vs CPython = speed-up (> 1: mp faster); vs floor = mp's cost in floors (1 = at the floor){}",
                if rounds() > 1 {
                    format!("{} rounds ", rounds())
                } else {
                    String::new()
                },
                if opts().quick { "; QUICK run" } else { "" }
            );
        }
        Report {
            bench,
            rows: Vec::new(),
            notes: Vec::new(),
            started: std::time::Instant::now(),
        }
    }

    pub fn add(&mut self, r: Row) {
        if opts().json {
            println!("{}", r.json());
        } else {
            if self.rows.last().map(|l| l.area) != Some(r.area) {
                println!("{}", header(r.area));
            }
            println!("{}", line(&r));
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
        self.rows.push(r);
    }

    /// A line about `area`'s rows (what its floors are, what a row means): printed after
    /// the bench's tables, and under the area's table in `table.md`.
    pub fn note(&mut self, area: &'static str, text: impl Into<String>) {
        self.notes.push((area, text.into()));
    }

    /// Writes `target/mp-bench/<bench>.jsonl` and rebuilds `table.md` and `speedup.svg`
    /// from every bench's latest file.
    pub fn finish(self) {
        if !opts().json {
            for (a, n) in &self.notes {
                println!("\n{a}: {n}");
            }
        }
        let dir = out_dir();
        let _ = std::fs::create_dir_all(&dir);
        let mut body: String = self.rows.iter().map(|r| r.json() + "\n").collect();
        for (a, n) in &self.notes {
            body.push_str(&(serde_json::json!({ "area": a, "note": n }).to_string() + "\n"));
        }
        let _ = std::fs::write(dir.join(format!("{}.jsonl", self.bench)), body);
        render(&dir);
        if !opts().json {
            println!(
                "\n({}: {:.1} s; rows in {})",
                self.bench,
                self.started.elapsed().as_secs_f64(),
                dir.join(format!("{}.jsonl", self.bench)).display()
            );
        }
    }
}

/// Rebuilds `table.md` and `speedup.svg` in `dir` from every bench's latest `.jsonl`.
fn render(dir: &std::path::Path) {
    let (all, notes) = load_all(dir);
    let mut md = String::new();
    let mut last = "";
    let flush_notes = |md: &mut String, area: &str| {
        for (a, n) in &notes {
            if a == area {
                md.push_str(&format!("\n{n}\n"));
            }
        }
    };
    for r in &all {
        if r.area != last {
            flush_notes(&mut md, last);
            md.push_str(&header(r.area));
            md.push('\n');
            last = r.area;
        }
        md.push_str(&line(r));
        md.push('\n');
    }
    flush_notes(&mut md, last);
    let _ = std::fs::write(dir.join("table.md"), md);
    let _ = std::fs::write(dir.join("speedup.svg"), svg(&all));
}

/// `target/mp-bench` (`target/mp-bench-quick` for `--quick` runs, so a smoke run never
/// overwrites the numbers of a full one).
pub fn out_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join(if opts().quick {
        "mp-bench-quick"
    } else {
        "mp-bench"
    })
}

/// The order areas are shown in, whichever bench produced them.
const AREAS: &[&str] = &[
    "processes",
    "connections",
    "queues",
    "sync",
    "shared memory",
    "codec",
    "codec: other formats",
    "pools",
    "pool memory",
    "managers",
];

/// Every bench's latest rows (in [`AREAS`] order) and notes.
fn load_all(dir: &std::path::Path) -> (Vec<Row>, Vec<(String, String)>) {
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return (rows, notes);
    };
    let mut files: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        for l in text.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(l) else {
                continue;
            };
            let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
            let area = s("area");
            if let Some(n) = v["note"].as_str() {
                notes.push((area, n.to_string()));
                continue;
            }
            let Some(area) = AREAS.iter().find(|a| **a == area) else {
                continue;
            };
            let unit = s("unit");
            let unit = ["µs", "ms", "ns", "M/s", "GB/s", "MiB", "x"]
                .into_iter()
                .find(|u| *u == unit)
                .unwrap_or("");
            rows.push(Row {
                area,
                workload: s("workload"),
                unit,
                mp: v["mp"].as_f64().unwrap_or(f64::NAN),
                cpython: v["cpython"].as_f64(),
                floor: v["floor"].as_f64(),
                lower_is_better: v["lower_is_better"].as_bool().unwrap_or(true),
            });
        }
    }
    rows.sort_by_key(|r| AREAS.iter().position(|a| *a == r.area));
    (rows, notes)
}

// ---------------------------------------------------------------------------------
// the chart

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Two log-scale bar panels per row: the speed-up over CPython (right of 1× = mp faster)
/// and mp's cost in floors (1× = at the floor).
fn svg(rows: &[Row]) -> String {
    let rows: Vec<&Row> = rows
        .iter()
        .filter(|r| r.area != "codec: other formats")
        .filter(|r| r.speedup().is_some() || r.vs_floor().is_some())
        .collect();
    let (label_w, panel_w, gap, row_h, top) = (520.0, 300.0, 40.0, 18.0, 60.0);
    let width = label_w + 2.0 * panel_w + 2.0 * gap;
    let height = top + row_h * rows.len() as f64 + 40.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        s,
        r##"<rect width="100%" height="100%" fill="#fff"/><text x="10" y="18" font-size="14" font-weight="bold">mp vs CPython multiprocessing (log scale), and mp's distance to the OS floor</text>"##
    );
    // panel 1: speed-up, log10 from 0.1x to 1000x; panel 2: floors, 1x to 100x
    let p1 = (label_w, -1.0f64, 3.0f64, "speed-up over CPython (× faster)");
    let p2 = (
        label_w + panel_w + gap,
        -1.0f64,
        2.0f64,
        "cost in OS floors (1× = floor)",
    );
    for (x0, lo, hi, title) in [p1, p2] {
        let _ = writeln!(
            s,
            r#"<text x="{x0}" y="40" font-weight="bold">{title}</text>"#
        );
        let mut e = lo;
        while e <= hi + 1e-9 {
            let x = x0 + (e - lo) / (hi - lo) * panel_w;
            let _ = writeln!(
                s,
                r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#ccc"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" fill="#555">{}×</text>"##,
                top - 6.0,
                height - 30.0,
                height - 16.0,
                10f64.powf(e)
            );
            e += 1.0;
        }
    }
    let bar = |s: &mut String, x0: f64, lo: f64, hi: f64, y: f64, v: f64, color: &str| {
        let clamp = |e: f64| e.clamp(lo, hi);
        let one = x0 + (clamp(0.0) - lo) / (hi - lo) * panel_w;
        let xe = x0 + (clamp(v.log10()) - lo) / (hi - lo) * panel_w;
        let (a, b) = if xe < one { (xe, one) } else { (one, xe) };
        let _ = writeln!(
            s,
            r##"<rect x="{a:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{color}"/><text x="{:.1}" y="{:.1}" fill="#222">{}</text>"##,
            y + 3.0,
            (b - a).max(1.0),
            row_h - 6.0,
            b + 3.0,
            y + row_h - 5.0,
            ratio(Some(v))
        );
    };
    let mut last = "";
    for (i, r) in rows.iter().enumerate() {
        let y = top + row_h * i as f64;
        if r.area != last {
            last = r.area;
            let _ = writeln!(
                s,
                r##"<line x1="0" y1="{y:.1}" x2="{width}" y2="{y:.1}" stroke="#999"/>"##
            );
        }
        let name: String = r.workload.chars().take(72).collect();
        let _ = writeln!(
            s,
            r#"<text x="6" y="{:.1}"><tspan font-weight="bold">{}</tspan> {}</text>"#,
            y + row_h - 5.0,
            esc(r.area),
            esc(&name)
        );
        if let Some(v) = r.speedup() {
            let color = if v >= 1.0 { "#2a7" } else { "#d43" };
            bar(&mut s, p1.0, p1.1, p1.2, y, v, color);
        }
        if let Some(v) = r.vs_floor() {
            bar(&mut s, p2.0, p2.1, p2.2, y, v, "#48c");
        }
    }
    s.push_str("</svg>\n");
    s
}

// ---------------------------------------------------------------------------------
// measuring

/// The median of `v` (the upper one of an even count); `v` must not be empty.
pub fn median<T: PartialOrd + Copy>(mut v: Vec<T>) -> T {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}

/// `rounds()` rounds of mp then CPython (A B A B …), medians of each; CPython's is
/// `None` if python3 never produced a number.
pub fn interleave(
    mut mp: impl FnMut() -> f64,
    mut cpython: impl FnMut() -> Option<f64>,
) -> (f64, Option<f64>) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..rounds() {
        a.push(mp());
        if let Some(x) = cpython() {
            b.push(x);
        }
    }
    (median(a), (!b.is_empty()).then(|| median(b)))
}

/// The median of `rounds()` runs of `f`.
pub fn med(mut f: impl FnMut() -> f64) -> f64 {
    median((0..rounds()).map(|_| f()).collect())
}

/// Where the two processes of a latency row run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// both on CPU 0 (`taskset -c 0`): each wake-up is a context switch
    OneCpu,
    /// parent on CPU 0, child on CPU 1: each wake-up is a cross-CPU wake-up
    TwoCpus,
    /// wherever the scheduler puts them
    Unpinned,
}

impl Placement {
    /// The placements this machine has (no `TwoCpus` on one CPU).
    pub fn all() -> Vec<Placement> {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut v = vec![Placement::OneCpu];
        if n > 1 {
            v.push(Placement::TwoCpus);
        }
        v.push(Placement::Unpinned);
        v
    }
    pub fn label(self) -> &'static str {
        match self {
            Placement::OneCpu => "one CPU",
            Placement::TwoCpus => "CPU 0 / CPU 1",
            Placement::Unpinned => "unpinned",
        }
    }
    pub fn parent_cpu(self) -> Option<usize> {
        match self {
            Placement::OneCpu | Placement::TwoCpus => Some(0),
            Placement::Unpinned => None,
        }
    }
    pub fn child_cpu(self) -> Option<usize> {
        match self {
            Placement::OneCpu => Some(0),
            Placement::TwoCpus => Some(1),
            Placement::Unpinned => None,
        }
    }
    /// The child's CPU as a number a task or a script can take: -1 = unpinned.
    pub fn child_arg(self) -> i64 {
        self.child_cpu().map_or(-1, |c| c as i64)
    }
    /// Pins (or unpins) the calling thread as the parent of this placement.
    pub fn enter_parent(self) {
        match self.parent_cpu() {
            Some(c) => pin(c),
            None => unpin(),
        }
    }
    /// Python for the parent's placement (`os` imported): one statement or `pass`.
    pub fn py_parent(self) -> String {
        match self.parent_cpu() {
            Some(c) => format!("os.sched_setaffinity(0, {{{c}}})"),
            None => "os.sched_setaffinity(0, range(os.cpu_count()))".into(),
        }
    }
}

/// Pins the calling thread to `cpu` (and, through fork, the children it starts).
pub fn pin(cpu: usize) {
    // SAFETY: plain affinity syscall on this thread with a zeroed, filled cpu_set_t.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Pins the calling thread to `cpu` if it is `>= 0` (a task's argument), else unpins it.
pub fn pin_arg(cpu: i64) {
    if cpu >= 0 {
        pin(cpu as usize)
    } else {
        unpin()
    }
}

/// Lets the calling thread run on every CPU again.
pub fn unpin() {
    // SAFETY: as above.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for c in 0..libc::CPU_SETSIZE as usize {
            libc::CPU_SET(c, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// This process's peak resident set (`VmHWM` of `/proc/self/status`), MiB.
pub fn vm_hwm_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let l = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = l.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The largest peak resident set of the waited-for children (`getrusage(RUSAGE_CHILDREN)`), MiB.
pub fn children_maxrss_mib() -> f64 {
    // SAFETY: getrusage fills the zeroed struct.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru);
        ru.ru_maxrss as f64 / 1024.0
    }
}

// ---------------------------------------------------------------------------------
// python3

/// Runs `python3 -c code` and parses the one number it prints (the last line).
pub fn python(code: &str) -> Option<f64> {
    python_args(code, &[])
}

/// Runs `python3 -c code args…` and parses the number on the last line of its stdout.
pub fn python_args(code: &str, args: &[String]) -> Option<f64> {
    python_nums(code, args)?.pop()
}

/// Runs `python3 -c code args…` and parses every whitespace-separated number it prints.
pub fn python_nums(code: &str, args: &[String]) -> Option<Vec<f64>> {
    let out = Command::new("python3")
        .arg("-c")
        .arg(code)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "python3 failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return None;
    }
    let v: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (!v.is_empty()).then_some(v)
}

/// A zeroed anonymous `MAP_SHARED` mapping of `len` bytes, inherited by forked children
/// (the floors' shared words); release it with `libc::munmap`.
pub fn shared_anon(len: usize) -> *mut libc::c_void {
    // SAFETY: a fresh anonymous mapping; no existing memory is touched.
    let m = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(m, libc::MAP_FAILED, "mmap of {len} shared bytes");
    m
}
