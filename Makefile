# correio - top-level build.  One non-recursive Makefile: each stage folder
# is one program made of all its .c files, lib/ is libcorreio.a, every
# tests/unit/*_test.c is one cmocka program.  Adding a file needs no edit here.
#
#   make                    build everything into build/ (or build-$(SANITIZER)/)
#   make run                install missing packages, build, run the demo
#   make test               install missing packages, build, run every test
#   make bench              run the benchmarks (numbers printed, nothing asserted)
#   make SANITIZER=address  the same tree with ASan (or undefined, or address,undefined)

SANITIZER ?=
comma     := ,
CC        ?= cc
PKGS      := libzmq libprotobuf-c lmdb libcares openssl libxcrypt libpcre2-8 opendkim libmicrohttpd

ifeq ($(SANITIZER),)
BUILD     := build
SANFLAGS  :=
else
BUILD     := build-$(subst $(comma),-,$(SANITIZER))
SANFLAGS  := -fsanitize=$(SANITIZER) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CFLAGS   ?= -O2 -g
CFLAGS   += -std=gnu11 -Wall -Wextra -Werror=implicit-function-declaration \
            -Wshadow -Wstrict-prototypes -Wformat=2 -fno-strict-aliasing \
            -D_GNU_SOURCE $(SANFLAGS)
CPPFLAGS += -Ilib -I$(BUILD)/gen $(PKG_CFLAGS)
LDFLAGS  += $(SANFLAGS)
LDLIBS   += $(PKG_LIBS) -lpthread -lm

STAGES   := ingress classifier router delivery fetcher
PROGRAMS := $(addprefix $(BUILD)/bin/correio-,$(STAGES)) $(BUILD)/bin/correio

PROTO_C  := $(BUILD)/gen/correio.pb-c.c
LIB_SRC  := $(wildcard lib/*.c)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o) $(BUILD)/gen/correio.pb-c.o
LIBA     := $(BUILD)/libcorreio.a

UNIT_SRC := $(wildcard tests/unit/*_test.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all deps run test unit blackbox bench fuzz clean
all: $(PROGRAMS) $(UNIT_BIN)

deps:
	@sh mk/deps.sh

# ---------------------------------------------------------------- protocol
$(PROTO_C): proto/correio.proto
	@mkdir -p $(BUILD)/gen
	protoc-c --proto_path=proto --c_out=$(BUILD)/gen proto/correio.proto

$(BUILD)/gen/correio.pb-c.o: $(PROTO_C)
	$(CC) $(CPPFLAGS) $(filter-out -Wshadow,$(CFLAGS)) -c -o $@ $<

# ---------------------------------------------------------------- objects
$(BUILD)/%.o: %.c $(PROTO_C)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

$(LIBA): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# each stage: every .c in its folder, over libcorreio
define stage_rule
$(BUILD)/bin/correio-$(1): $(patsubst %.c,$(BUILD)/%.o,$(wildcard $(1)/*.c)) $(LIBA)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach s,$(STAGES),$(eval $(call stage_rule,$(s))))

$(BUILD)/bin/correio: $(patsubst %.c,$(BUILD)/%.o,$(wildcard ctl/*.c)) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# unit tests: tests/unit/NAME_test.c may use any lib/ module and, through
# the TEST_OBJS_NAME variable in tests/unit/objs.mk, stage objects.
-include tests/unit/objs.mk
.SECONDEXPANSION:
$(BUILD)/tests/%_test: $(BUILD)/tests/unit/%_test.o $$(TEST_OBJS_$$*) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(TEST_OBJS_$*) $(LIBA) $(LDLIBS) -lcmocka

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# ---------------------------------------------------------------- commands
run: deps all
	@sh mk/demo.sh $(BUILD)

unit: all
	@sh tests/run-unit.sh $(BUILD)

blackbox: all
	@sh tests/run-blackbox.sh $(BUILD)

# The whole suite: unit and black-box tests on the normal build, then once
# more on an ASan+UBSan build.
test: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory SANITIZER=address,undefined all
	@sh tests/run-all.sh $(BUILD) build-address-undefined

bench:
	@sh mk/deps.sh bench
	@$(MAKE) --no-print-directory all
	@sh bench/run.sh $(BUILD)

# fuzz: every tests/fuzz/NAME_fuzz.c with clang's libFuzzer, run for
# FUZZ_SECONDS each, starting from tests/fuzz/seeds/NAME/ when it exists.
# FUZZ_SRC_NAME lists the sources a target needs, FUZZ_LIBS_NAME its
# libraries.
FUZZ_SECONDS ?= 30
FUZZ_BASE          := lib/buf.c lib/xalloc.c lib/log.c
FUZZ_SRC_address   := lib/address.c $(FUZZ_BASE)
FUZZ_SRC_smtp_data := ingress/smtp_data.c $(FUZZ_BASE)
FUZZ_SRC_smtp_client := delivery/smtp_client.c lib/tls.c lib/base64.c lib/timeutil.c \
                        lib/header_skip.c lib/status_code.c $(FUZZ_BASE)
FUZZ_LIBS_smtp_client := -lssl -lcrypto
FUZZ_SRC_dsn_param := ingress/smtp_command.c lib/address.c $(FUZZ_BASE)
FUZZ_MAILBOX       := fetcher/mailbox.c fetcher/pop3.c fetcher/imap.c lib/tls.c lib/base64.c lib/timeutil.c $(FUZZ_BASE)
FUZZ_SRC_pop3_reply := $(FUZZ_MAILBOX)
FUZZ_LIBS_pop3_reply := -lssl -lcrypto
FUZZ_SRC_imap_response := $(FUZZ_MAILBOX)
FUZZ_LIBS_imap_response := -lssl -lcrypto
FUZZ_SRC_rules     := classifier/rules.c $(FUZZ_BASE)
FUZZ_LIBS_rules    := -lpcre2-8
FUZZ_SRC_spf_record := lib/spf.c lib/dns.c lib/dns_cache.c lib/timeutil.c $(FUZZ_BASE)
FUZZ_LIBS_spf_record := -lcares
FUZZ_SRC_mime      := lib/mime.c lib/html.c $(FUZZ_BASE)
FUZZ_SRC_dkim      := classifier/dkim.c $(FUZZ_BASE)
FUZZ_LIBS_dkim     := -lopendkim
FUZZ_NAMES := $(patsubst tests/fuzz/%_fuzz.c,%,$(wildcard tests/fuzz/*_fuzz.c))

build-fuzz/%_fuzz: tests/fuzz/%_fuzz.c $$(FUZZ_SRC_$$*) $(PROTO_C)
	@mkdir -p $(dir $@)
	clang -g -O1 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined $(CPPFLAGS) \
	    -o $@ $< $(FUZZ_SRC_$*) $(FUZZ_LIBS_$*)

fuzz: $(FUZZ_NAMES:%=build-fuzz/%_fuzz)
	@for f in $^; do echo "fuzz: $$f for $(FUZZ_SECONDS) s"; mkdir -p $$f.corpus; \
	    seeds=tests/fuzz/seeds/$$(basename $$f _fuzz); \
	    if [ -d $$seeds ]; then cp $$seeds/* $$f.corpus/; fi; \
	    $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 $$f.corpus > $$f.log 2>&1 \
	        || { tail -40 $$f.log; echo "fuzz: $$f failed, see $$f.log"; exit 1; }; \
	    grep stat::number_of_executed_units $$f.log; done

clean:
	rm -rf build build-*
