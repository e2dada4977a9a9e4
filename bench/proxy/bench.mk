# bench/proxy: softunicast proxy beside dante, microsocks, tinyproxy and a
# splice relay (a benchmark, not a test; needs root for its network namespace).
BENCH_PROXY := $(BUILD)/bench/proxy
BENCHES += bench-proxy
EXTRA_BINS += $(BENCH_PROXY)

$(BENCH_PROXY): $(BUILD)/obj/bench/proxy/main.o
	@mkdir -p $(@D)
	$(CC) $(SAN) -o $@ $< -lpthread

.PHONY: bench-proxy
bench-proxy: $(BENCH_PROXY) $(CLI)
	SU_BUILD=$(BUILD) bash bench/proxy/run.sh $(BENCH_PROXY_ARGS)
