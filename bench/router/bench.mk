# bench/router: per-packet cost of each router path (BPF_PROG_TEST_RUN, live
# frames, JIT) beside a parse-and-bounce baseline, and packets per second
# through a router namespace for softunicast XDP, nftables stateful SNAT and
# plain forwarding fed by one XDP generator.  A benchmark, not a test; needs
# root.  BENCH_ROUTER_ARGS passes options (see bench/router/main.c --help).
BENCH_ROUTER := $(BUILD)/bench/router
BENCHES += bench-router
EXTRA_BINS += $(BENCH_ROUTER)

$(BUILD)/bench/router-bpf/bench_router.bpf.o: bench/router/bench_router.bpf.c src/bpf/router.bpf.c \
		$(wildcard src/bpf/*.h) bench/lib/xdp_restore.bpf.h
	@mkdir -p $(@D)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/include/bench_router.skel.h: $(BUILD)/bench/router-bpf/bench_router.bpf.o
	@mkdir -p $(@D)
	$(BPFTOOL) gen skeleton $< name bench_router > $@.tmp && mv $@.tmp $@

$(BUILD)/obj/bench/router/main.o: $(BUILD)/include/bench_router.skel.h

$(BENCH_ROUTER): $(BUILD)/obj/bench/router/main.o $(STATIC)
	@mkdir -p $(@D)
	$(CC) $(SAN) -o $@ $< $(STATIC) $(LDLIBS)

.PHONY: bench-router
bench-router: $(BENCH_ROUTER)
	$(BENCH_ROUTER) $(BENCH_ROUTER_ARGS)
