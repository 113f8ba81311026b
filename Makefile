# egov build. `make run` and `make test` are the two commands a newcomer needs;
# both install missing Debian/npm packages first (scripts/install-deps.sh).
#
# Variables: BUILD (output dir, default build), SAN=1 (AddressSanitizer +
# UndefinedBehaviorSanitizer build), DATA (data dir for `make run`).

BUILD ?= build
DATA ?= var
CC ?= cc
PKGS := libmicrohttpd libcjson sqlite3 libpq openssl libsodium libqrencode gnutls libcurl libpcre2-8 yaml-0.1

PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wcast-qual \
	-Wformat=2 -Wno-unused-parameter -Werror
CFLAGS ?= -O2 -g
ifeq ($(SAN),1)
CFLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) -Isrc $(PKG_CFLAGS)
# Header dependencies per file: the compiler writes, beside each object and
# test binary, a .d file naming the headers it read (-MMD: the project's,
# not the system's), with an empty rule per header (-MP) so that a header
# removed or renamed does not stop the build. Touching a header rebuilds
# only what includes it.
DEPFLAGS = -MMD -MP
LIBS = $(PKG_LIBS) -lpthread -lm

LIB_SRC := $(filter-out src/main.c,$(shell find src -name '*.c' | sort))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)
# The parsers the fuzz targets reach: no server, no database.
FUZZ_LIB := src/core/b64url.c src/core/json.c src/core/buf.c src/core/arena.c src/core/err.c src/core/uri.c src/core/utf8.c \
	src/core/router.c src/oidc/oidc_jwt_parse.c \
	src/exchange/wire/wire.c src/exchange/wire/id.c \
	$(wildcard src/core/jsonschema*.c)

.PHONY: all build deps run test unit bench fuzz fuzz-build clean format

all: build
build: $(BUILD)/egov

deps:
	@scripts/install-deps.sh build

# An object without its .d (a build directory from before -MMD) is rebuilt.
$(BUILD)/%.o: %.c $(BUILD)/%.d
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(DEPFLAGS) -c $< -o $@

# The OpenAPI description is built into the binary (src/system/openapi.c).
$(BUILD)/src/system/openapi.o: docs/api/openapi.json

$(BUILD)/libegov.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/egov: $(BUILD)/src/main.o $(BUILD)/libegov.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/tests/%.d $(BUILD)/libegov.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(DEPFLAGS) -MF $@.d -MT $@ -Itests/unit $(LDFLAGS) -o $@ $< $(BUILD)/libegov.a \
		$(LIBS) -lcmocka

unit: $(UNIT_BIN)

# The .d files: written by the compiler, never by a rule; those present
# are read (the library's, main's and the unit tests', in whichever BUILD
# directory, the sanitizer build's included). A target with no rule makes
# one that is missing count as new, so its object is rebuilt.
DEP_FILES := $(LIB_OBJ:.o=.d) $(BUILD)/src/main.d $(UNIT_BIN:=.d)
$(DEP_FILES):
-include $(wildcard $(DEP_FILES))

build/fuzz/%: tests/fuzz/%.c $(FUZZ_LIB) $(wildcard src/core/*.h) src/exchange/wire/wire.h src/exchange/exchange_limits.h
	@mkdir -p $(dir $@)
	clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=undefined -Isrc \
		$(shell pkg-config --cflags libcjson libpcre2-8) -o $@ $< $(FUZZ_LIB) \
		$(shell pkg-config --libs libcjson libpcre2-8) -lm

fuzz-build: $(FUZZ_BIN)

run: deps build
	./$(BUILD)/egov init --demo --data $(DATA)
	@echo "egov: open http://127.0.0.1:8080 (Ctrl-C stops)"
	@if [ -n "$${DISPLAY}$${WAYLAND_DISPLAY}" ] && command -v xdg-open >/dev/null; then \
		(sleep 1; xdg-open http://127.0.0.1:8080 >/dev/null 2>&1) & fi
	./$(BUILD)/egov serve --data $(DATA)

test:
	@scripts/install-deps.sh test
	@scripts/test.sh

bench:
	@scripts/install-deps.sh bench
	@scripts/bench.sh

fuzz:
	@scripts/install-deps.sh test
	@FUZZ_SECONDS=$${FUZZ_SECONDS:-300} scripts/fuzz.sh

format:
	clang-format -i $$(find src tests/unit tests/fuzz -name '*.[ch]')

clean:
	rm -rf build
