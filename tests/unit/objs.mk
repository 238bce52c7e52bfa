# Stage objects that a unit test links besides libcorreio.a:
# TEST_OBJS_<name> for tests/unit/<name>_test.c.  Paths under $(BUILD).
TEST_OBJS_scoring = $(BUILD)/classifier/scoring.o $(BUILD)/classifier/test_gtube.o $(BUILD)/classifier/spam_headers.o \
                    $(BUILD)/classifier/test_mime_html.o $(BUILD)/classifier/test_html_image.o \
                    $(BUILD)/classifier/test_charset.o $(BUILD)/classifier/test_mime_bad.o \
                    $(BUILD)/classifier/rules.o \
                    $(BUILD)/classifier/test_lists.o $(BUILD)/classifier/test_bayes.o
TEST_OBJS_mime =
TEST_OBJS_routing = $(BUILD)/router/routing.o $(BUILD)/router/content_filter.o $(BUILD)/router/spam_action.o
TEST_OBJS_maildir = $(BUILD)/delivery/maildir.o
TEST_OBJS_smtp_data = $(BUILD)/ingress/smtp_data.o
TEST_OBJS_smtp_command = $(BUILD)/ingress/smtp_command.o
TEST_OBJS_restriction = $(BUILD)/ingress/smtpd_action.o
TEST_OBJS_nexthop = $(BUILD)/delivery/nexthop.o $(BUILD)/delivery/myself.o
TEST_OBJS_bounce = $(BUILD)/delivery/bounce.o
TEST_OBJS_queue = $(BUILD)/delivery/queue.o $(BUILD)/delivery/sched_heap.o
TEST_OBJS_dsn_param = $(BUILD)/ingress/smtp_command.o
TEST_OBJS_quota = $(BUILD)/delivery/quota.o
TEST_OBJS_smtp_client = $(BUILD)/delivery/smtp_client.o
TEST_OBJS_outbound = $(BUILD)/delivery/outbound.o $(BUILD)/delivery/nexthop.o $(BUILD)/delivery/myself.o $(BUILD)/delivery/smtp_client.o $(BUILD)/delivery/results.o
TEST_OBJS_content_filter = $(BUILD)/router/content_filter.o $(BUILD)/router/routing.o $(BUILD)/router/spam_action.o
TEST_OBJS_policy_keys = $(BUILD)/ingress/policy_keys.o
TEST_OBJS_policy_bypass = $(BUILD)/ingress/policy_bypass.o
TEST_OBJS_policy_state = $(BUILD)/router/policy_state.o
TEST_OBJS_awl = $(BUILD)/router/awl.o $(BUILD)/router/policy_server.o $(BUILD)/router/policy_state.o
TEST_OBJS_mailbox = $(BUILD)/fetcher/mailbox.o $(BUILD)/fetcher/pop3.o $(BUILD)/fetcher/imap.o
TEST_OBJS_domain_pop = $(BUILD)/fetcher/domain_pop.o
TEST_OBJS_rules = $(TEST_OBJS_scoring)
TEST_OBJS_spam_lists = $(TEST_OBJS_scoring)
TEST_OBJS_classifier_dns = $(TEST_OBJS_scoring) $(BUILD)/classifier/test_dns.o $(BUILD)/classifier/dkim.o
TEST_OBJS_bayes = $(TEST_OBJS_scoring)
TEST_OBJS_dkim = $(BUILD)/classifier/dkim.o
TEST_OBJS_spam_action = $(TEST_OBJS_scoring) $(BUILD)/classifier/spam_reasons.o $(BUILD)/router/spam_action.o
