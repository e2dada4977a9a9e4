# bench/plan: time and peak memory to plan a synthetic fleet of 1,000,000
# egress addresses, 300 DCs, 30,000 servers and 50 tag-sets from scratch, to
# write and load the plan, and to re-plan after adding one server (a
# benchmark, not a test).  BENCH_PLAN_ARGS="--scale 0.1" for a quick run.
BENCH_PLAN := $(BUILD)/bench/plan
BENCHES += bench-plan
EXTRA_BINS += $(BENCH_PLAN)

$(BENCH_PLAN): $(BUILD)/obj/bench/plan/bench_plan.o $(STATIC)
	@mkdir -p $(@D)
	$(CC) $(SAN) -o $@ $< $(STATIC) $(LDLIBS)

.PHONY: bench-plan
bench-plan: $(BENCH_PLAN)
	$(BENCH_PLAN) $(BENCH_PLAN_ARGS)
