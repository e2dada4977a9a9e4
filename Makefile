# softunicast — GNU make build.  `make` builds everything into build/.
# Sources are discovered by directory, so adding a file needs no Makefile edit:
#   src/lib/*.c        -> build/lib/libsoftunicast.{so,a}
#   src/cli/*.c, src/router/*.c, src/agent/*.c, src/lab/*.c, src/proxy/*.c -> build/bin/softunicast
#   src/bpf/*.bpf.c    -> build/bpf/*.bpf.o + build/include/*.skel.h
#   tests/unit/test_*.c, tests/bpf/test_*.c -> build/tests/*/test_*  (TAP, run by prove)
#   tests/e2e/*.t      -> run by prove as root
#   tests/fuzz/fuzz_*.c -> build/fuzz/fuzz_*  (clang libFuzzer)

PREFIX  ?= /usr/local
LIBDIR  ?= $(PREFIX)/lib
# systemd units go where this system's systemd looks (Debian 12: /lib/systemd/system).
UNITDIR ?= $(or $(shell pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null),$(PREFIX)/lib/systemd/system)
DESTDIR ?=
BUILD   ?= build
VERSION := 0.1.0
SONAME  := libsoftunicast.so.0

CC      ?= cc
CLANG   ?= clang
BPFTOOL ?= bpftool
PKGS    := libbpf yaml-0.1 jansson libmnl libutf8proc libsystemd libmicrohttpd libcurl libevent libcares libmaxminddb zlib
WERROR  := $(if $(filter true,$(CI)),-Werror,)
CFLAGS  ?= -O2 -g
# Project flags live apart from CFLAGS so `make CFLAGS=-O0` keeps them.
SU_CFLAGS := -std=gnu11 -Wall -Wextra -Wno-unused-parameter -Wshadow -Wstrict-prototypes \
           $(WERROR) -fPIC -D_GNU_SOURCE -DSU_VERSION=\"$(VERSION)\" \
           -Iinclude -Isrc -I$(BUILD)/include $(shell pkg-config --cflags $(PKGS))
LDLIBS  += $(shell pkg-config --libs $(PKGS)) -lm
# <linux/types.h> wants <asm/types.h>, which Debian keeps under the host triplet.
BPF_CFLAGS := -O2 -g -target bpf -Wall -Werror -Isrc -I/usr/include/$(shell $(CC) -dumpmachine)
SAN     :=

LIB_SRC  := $(sort $(wildcard src/lib/*.c src/lib/store/*.c))
BIN_SRC  := $(sort $(wildcard src/cli/*.c src/daemon/*.c src/router/*.c src/agent/*.c src/lab/*.c src/proxy/*.c))
BPF_SRC  := $(sort $(wildcard src/bpf/*.bpf.c))
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c tests/bpf/test_*.c))
TLIB_SRC := $(sort $(wildcard tests/lib/*.c))
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
BIN_OBJ  := $(BIN_SRC:%.c=$(BUILD)/obj/%.o)
TLIB_OBJ := $(TLIB_SRC:%.c=$(BUILD)/obj/%.o)
BPF_OBJ  := $(BPF_SRC:src/bpf/%.bpf.c=$(BUILD)/bpf/%.bpf.o)
SKELS    := $(BPF_SRC:src/bpf/%.bpf.c=$(BUILD)/include/%.skel.h)
TESTS    := $(UNIT_SRC:%.c=$(BUILD)/%)
FUZZERS  := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)

STATIC   := $(BUILD)/lib/libsoftunicast.a
SHARED   := $(BUILD)/lib/libsoftunicast.so
CLI      := $(BUILD)/bin/softunicast
PRELOAD  := $(wildcard src/preload/*.c)
EXTRA_BINS :=

# Fragments add their own binaries to EXTRA_BINS and BENCHES, so they come
# before the rules that list those.
-include src/preload/preload.mk
include $(wildcard bench/*/bench.mk)

.PHONY: all check test-unit test-e2e fuzz asan bench install deb clean
all: $(CLI) $(SHARED) $(STATIC) $(BPF_OBJ) $(BUILD)/lib/pkgconfig/softunicast.pc $(TESTS) $(EXTRA_BINS)

# The library never includes a BPF skeleton; everything else may.
$(BUILD)/obj/src/lib/%.o: src/lib/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(SU_CFLAGS) $(SAN) -MMD -MP -c $< -o $@

$(BUILD)/obj/%.o: %.c $(SKELS) | $(BUILD)/include
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(SU_CFLAGS) $(SAN) -MMD -MP -c $< -o $@

$(BUILD)/bpf/%.bpf.o: src/bpf/%.bpf.c $(wildcard src/bpf/*.h)
	@mkdir -p $(@D)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/include/%.skel.h: $(BUILD)/bpf/%.bpf.o
	@mkdir -p $(@D)
	$(BPFTOOL) gen skeleton $< name $(subst -,_,$*) > $@.tmp && mv $@.tmp $@

$(BUILD)/include:
	@mkdir -p $@

$(STATIC): $(LIB_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(SHARED): $(LIB_OBJ) src/lib/libsoftunicast.map
	@mkdir -p $(@D)
	$(CC) -shared $(SAN) -Wl,-soname,$(SONAME) -Wl,--version-script=src/lib/libsoftunicast.map \
	  -o $(BUILD)/lib/$(SONAME) $(LIB_OBJ) $(LDLIBS)
	ln -sf $(SONAME) $@

$(BUILD)/lib/pkgconfig/softunicast.pc: softunicast.pc.in Makefile
	@mkdir -p $(@D)
	sed -e 's|@PREFIX@|$(PREFIX)|; s|@LIBDIR@|$(LIBDIR)|; s|@VERSION@|$(VERSION)|' $< > $@

$(CLI): $(BIN_OBJ) $(STATIC)
	@mkdir -p $(@D)
	$(CC) $(SAN) -o $@ $(BIN_OBJ) $(STATIC) $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(TLIB_OBJ) $(STATIC)
	@mkdir -p $(@D)
	$(CC) $(SAN) -o $@ $< $(TLIB_OBJ) $(STATIC) $(LDLIBS) -lcmocka

# libFuzzer harnesses compile the library sources they need directly, with clang.
FUZZ_CFLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -DSU_VERSION=\"$(VERSION)\" -Iinclude -Isrc \
               -I$(BUILD)/include $(shell pkg-config --cflags $(PKGS))
$(BUILD)/fuzz/%: tests/fuzz/%.c $(LIB_SRC) $(wildcard tests/fuzz/*.h src/lib/*.h src/bpf/*.h)
	@mkdir -p $(@D)
	$(CLANG) $(FUZZ_CFLAGS) -o $@ $< $(LIB_SRC) $(LDLIBS)

fuzz: $(FUZZERS)

# check: every suite through prove; prove's closing "Result: PASS/FAIL" line is the summary.
check: all fuzz
	prove -v --timer $(TESTS) $(sort $(wildcard tests/e2e/*.t)) tests/fuzz/run.t

asan:
	$(MAKE) BUILD=build-asan SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" CFLAGS="-O1 -g" all
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 SU_BUILD=build-asan \
	  prove -v $(UNIT_SRC:%.c=build-asan/%) $(sort $(wildcard tests/e2e/*.t))

bench: $(BENCHES)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(LIBDIR)/pkgconfig \
	  $(DESTDIR)$(PREFIX)/include/softunicast $(DESTDIR)$(PREFIX)/share/man/man1 \
	  $(DESTDIR)$(PREFIX)/lib/softunicast/bpf $(DESTDIR)$(UNITDIR) \
	  $(DESTDIR)$(PREFIX)/share/softunicast/examples/etc $(DESTDIR)$(PREFIX)/share/doc/softunicast \
	  $(DESTDIR)$(PREFIX)/share/softunicast/grafana $(DESTDIR)$(PREFIX)/share/softunicast/prometheus
	install -m 0755 $(CLI) $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 $(STATIC) $(DESTDIR)$(LIBDIR)/
	install -m 0755 $(BUILD)/lib/$(SONAME) $(DESTDIR)$(LIBDIR)/
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libsoftunicast.so
	install -m 0644 $(BUILD)/lib/pkgconfig/softunicast.pc $(DESTDIR)$(LIBDIR)/pkgconfig/
	install -m 0644 include/softunicast/*.h $(DESTDIR)$(PREFIX)/include/softunicast/
	install -m 0644 docs/man/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 0755 src/lab/lab.sh $(DESTDIR)$(PREFIX)/share/softunicast/
	install -m 0644 examples/*.yaml $(DESTDIR)$(PREFIX)/share/softunicast/examples/
	install -m 0644 contrib/etc/*.example $(DESTDIR)$(PREFIX)/share/softunicast/examples/etc/
	install -m 0644 contrib/grafana/*.json $(DESTDIR)$(PREFIX)/share/softunicast/grafana/
	install -m 0644 contrib/prometheus/*.yml $(DESTDIR)$(PREFIX)/share/softunicast/prometheus/
	install -m 0644 docs/*.md $(DESTDIR)$(PREFIX)/share/doc/softunicast/
	install -m 0644 $(BPF_OBJ) $(DESTDIR)$(PREFIX)/lib/softunicast/bpf/
	install -m 0644 contrib/systemd/*.service $(DESTDIR)$(UNITDIR)/

# Debian packages (debhelper) from a copy of the tree, into $(BUILD)/deb/.
deb:
	rm -rf $(BUILD)/deb && mkdir -p $(BUILD)/deb/src
	tar --exclude='./build*' --exclude=./.git -cf - . | tar -C $(BUILD)/deb/src -xf -
	cd $(BUILD)/deb/src && dpkg-buildpackage -b -us -uc

clean:
	rm -rf build build-asan

.SECONDARY:

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
