# bench/connect: connect() rate, latency and failures per port selection
# strategy as one slice fills up (a benchmark, not a test; needs root for its
# private network namespace).
BENCH_CONNECT := $(BUILD)/bench/connect
BENCHES += bench-connect
EXTRA_BINS += $(BENCH_CONNECT)

$(BENCH_CONNECT): $(BUILD)/obj/bench/connect/main.o $(STATIC)
	@mkdir -p $(@D)
	$(CC) $(SAN) -o $@ $< $(STATIC) $(LDLIBS) -lpthread

.PHONY: bench-connect
bench-connect: $(BENCH_CONNECT)
	$(BENCH_CONNECT) $(BENCH_CONNECT_ARGS)
