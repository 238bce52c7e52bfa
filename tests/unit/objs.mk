# Stage objects that a unit test links besides libcorreio.a:
# TEST_OBJS_<name> for tests/unit/<name>_test.c.  Paths under $(BUILD).
TEST_OBJS_scoring = $(BUILD)/classifier/scoring.o $(BUILD)/classifier/test_gtube.o $(BUILD)/classifier/spam_headers.o
TEST_OBJS_routing = $(BUILD)/router/routing.o
TEST_OBJS_maildir = $(BUILD)/delivery/maildir.o
TEST_OBJS_smtp_data = $(BUILD)/ingress/smtp_data.o
TEST_OBJS_smtp_command = $(BUILD)/ingress/smtp_command.o
TEST_OBJS_restriction = $(BUILD)/ingress/smtpd_action.o
