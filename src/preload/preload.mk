# libsoftunicast-preload.so: the LD_PRELOAD shim.  It links the egress objects
# it needs directly (not libsoftunicast.so) so that preloading it pulls in no
# plan, YAML or BPF dependencies; only connect() is exported.
PRELOAD_SO  := $(BUILD)/lib/libsoftunicast-preload.so
PRELOAD_OBJ := $(patsubst %,$(BUILD)/obj/src/lib/%.o,egress egress_port assignment counters sockdiag tags util err)

all: $(PRELOAD_SO)

$(PRELOAD_SO): $(BUILD)/obj/src/preload/preload.o $(PRELOAD_OBJ) src/preload/preload.map
	@mkdir -p $(@D)
	$(CC) -shared $(SAN) -Wl,-soname,libsoftunicast-preload.so -Wl,--version-script=src/preload/preload.map -o $@ \
	  $(BUILD)/obj/src/preload/preload.o $(PRELOAD_OBJ) -lmnl -ldl -lpthread

# `make install` also installs the shim next to the library.
.PHONY: install-preload
install: install-preload
install-preload: $(PRELOAD_SO)
	install -D -m 0755 $(PRELOAD_SO) $(DESTDIR)$(LIBDIR)/libsoftunicast-preload.so
