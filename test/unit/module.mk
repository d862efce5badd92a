# Shared rules of the standalone unit tests of one pure-C module of src/
# (no PostgreSQL needed).  A module's Makefile sets MODULE (src/$(MODULE).c,
# test_$(MODULE).c, fuzz_$(MODULE).c) and FUZZ_ARGS, then includes this.
#   make check      build with -Wall -Wextra -Werror and run the tests
#   make valgrind   run the tests under valgrind; any error or leak fails
#   make fuzz       libFuzzer + ASan + UBSan for FUZZ_SECONDS (default 60)
#   make clean      remove what the targets above built

SRC_DIR      := ../../../src
CC           ?= cc
CLANG        ?= clang
FUZZ_SECONDS ?= 60

# The extension's warnings, plus PostgreSQL's stricter ones.
WARNINGS := -Wall -Wextra -Werror -Wmissing-prototypes \
	-Wdeclaration-after-statement -Wvla -Wpointer-arith \
	-Wimplicit-fallthrough=3 -Wformat-security
CFLAGS   := -std=gnu11 -g -O1 $(WARNINGS) -I$(SRC_DIR)
FUZZ_FLAGS := -g -O1 -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=all -I$(SRC_DIR)
MODULE_SRC := $(SRC_DIR)/$(MODULE).c $(SRC_DIR)/$(MODULE).h

.PHONY: check valgrind fuzz clean

test_$(MODULE): test_$(MODULE).c $(MODULE_SRC)
	$(CC) $(CFLAGS) -o $@ test_$(MODULE).c $(SRC_DIR)/$(MODULE).c

check: test_$(MODULE)
	./test_$(MODULE)

valgrind: test_$(MODULE)
	valgrind --quiet --leak-check=full --show-leak-kinds=all \
		--errors-for-leak-kinds=all --error-exitcode=99 ./test_$(MODULE)

fuzz_$(MODULE): fuzz_$(MODULE).c $(MODULE_SRC)
	$(CLANG) $(FUZZ_FLAGS) -o $@ fuzz_$(MODULE).c $(SRC_DIR)/$(MODULE).c

# The working corpus starts from the checked-in seeds; libFuzzer exits
# non-zero on a crash, a sanitizer report, a leak or a trapped property.
fuzz: fuzz_$(MODULE)
	rm -rf fuzz-corpus && mkdir fuzz-corpus
	./fuzz_$(MODULE) -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
		$(FUZZ_ARGS) fuzz-corpus seeds

clean:
	rm -rf test_$(MODULE) fuzz_$(MODULE) fuzz-corpus crash-* leak-* \
		timeout-* oom-* slow-unit-*
