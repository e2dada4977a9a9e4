# bench/moves: per-packet cost of the live-move paths of the server's decap
# (the second hop sent by a slice's new owner, received by its previous
# owner, refused after the deadline) against plain decapsulation, from one
# run (BPF_PROG_TEST_RUN, JIT).  A benchmark, not a test; needs root (its own
# network namespace with a real TCP connection for the socket look-ups).
BENCH_MOVES := $(BUILD)/bench/moves
BENCHES += bench-moves
EXTRA_BINS += $(BENCH_MOVES)

$(BUILD)/bench/moves-bpf/bench_moves.bpf.o: bench/moves/bench_moves.bpf.c src/bpf/decap.bpf.c \
		$(wildcard src/bpf/*.h) bench/lib/xdp_restore.bpf.h
	@mkdir -p $(@D)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/include/bench_moves.skel.h: $(BUILD)/bench/moves-bpf/bench_moves.bpf.o
	@mkdir -p $(@D)
	$(BPFTOOL) gen skeleton $< name bench_moves > $@.tmp && mv $@.tmp $@

$(BUILD)/obj/bench/moves/main.o: $(BUILD)/include/bench_moves.skel.h

$(BENCH_MOVES): $(BUILD)/obj/bench/moves/main.o $(STATIC)
	@mkdir -p $(@D)
	$(CC) $(SAN) -o $@ $< $(STATIC) $(LDLIBS)

.PHONY: bench-moves
bench-moves: $(BENCH_MOVES)
	$(BENCH_MOVES) $(BENCH_MOVES_ARGS)
