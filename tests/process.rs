mp::test_support!();
