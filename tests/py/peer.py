"""A CPython peer for tests/interop_python.rs.

usage: peer.py MODE ADDRESS KEY
  MODE     client | listener | pickle_client | pickle_listener
  ADDRESS  host:port or a Unix socket path (listener: ignored, binds 127.0.0.1:0)
  KEY      authkey as text, or '-' for no authkey
Prints one line per event; authentication failures print 'AuthenticationError'.
"""
import sys
from multiprocessing.connection import Client, Listener, AuthenticationError


def parse(addr):
    if '/' not in addr and ':' in addr:
        host, port = addr.rsplit(':', 1)
        return (host, int(port))
    return addr


def out(*a):
    print(*a, flush=True)


def exchange_bytes(c):
    c.send_bytes(b'hello from python')
    m = c.recv_bytes()
    out('got', m.decode())
    big = c.recv_bytes()
    out('big', len(big), big == bytes(i % 251 for i in range(len(big))))
    c.send_bytes(big[::-1])


def exchange_pickle(c):
    sent = [1, -7, 2**40, 2.5, 'str \u00e9', b'\x00bytes', [1, 2], (3, 'four'), {'a': 1, 'b': [None]}, None, True]
    c.send(sent)
    assert c.recv() == 'ok'
    c.send((7, 'seven', [7, None]))
    back = c.recv()
    out('back', repr(back))
    out('same', back == sent)
    reply = c.recv()
    out('reply', repr(reply))


def main():
    mode, addr, key = sys.argv[1:4]
    authkey = None if key == '-' else key.encode()
    try:
        if mode.endswith('client'):
            c = Client(parse(addr), authkey=authkey)
        else:
            l = Listener(('127.0.0.1', 0), authkey=authkey)
            out('address %s:%d' % l.address)
            c = l.accept()
        out('connected')
        if mode.startswith('pickle'):
            exchange_pickle(c)
        else:
            exchange_bytes(c)
        c.close()
    except AuthenticationError:
        out('AuthenticationError')
    except EOFError:
        out('EOFError')


main()
