# Stage objects that a unit test links besides libcorreio.a:
# TEST_OBJS_<name> for tests/unit/<name>_test.c.  Paths under $(BUILD).
