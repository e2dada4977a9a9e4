# bench/converge: time until N watchers (the real read-and-watch code) have
# applied a one-IP change of the bench fleet published to a local etcd, the
# bytes each read, and etcd's load, beside copying the whole plan file to N
# readers (a benchmark, not a test).  BENCH_CONVERGE_ARGS="--scale 0.01 --max 300".
BENCH_CONVERGE := $(BUILD)/bench/converge
BENCHES += bench-converge
EXTRA_BINS += $(BENCH_CONVERGE)

$(BENCH_CONVERGE): $(BUILD)/obj/bench/converge/main.o $(BUILD)/obj/tests/lib/etcd_run.o $(STATIC)
	@mkdir -p $(@D)
	$(CC) $(SAN) -o $@ $^ $(LDLIBS)

.PHONY: bench-converge
bench-converge: $(BENCH_CONVERGE)
	$(BENCH_CONVERGE) $(BENCH_CONVERGE_ARGS)
