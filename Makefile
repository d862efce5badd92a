# redshift_fdw — PGXS build.
#   make                 build the shared library
#   make install         install into the PostgreSQL found by $(PG_CONFIG)
#   make installcheck    pg_regress against a running server (see test/run-tests)
#   make format          clang-format every C source in place

EXTENSION  = redshift_fdw
MODULE_big = redshift_fdw
OBJS       = $(patsubst %.c,%.o,$(wildcard src/*.c))
DATA       = $(wildcard sql/redshift_fdw--*.sql)
PGFILEDESC = "redshift_fdw - Amazon Redshift foreign-data wrapper"

# pg_regress inputs are sql/*.sql other than the install scripts.
REGRESS      = $(sort $(patsubst sql/%.sql,%,$(filter-out sql/redshift_fdw--%,$(wildcard sql/*.sql))))

PG_CPPFLAGS = -I$(srcdir)/src -I$(shell $(PG_CONFIG) --includedir)
SHLIB_LINK  = -lpq -lcurl -lssl -lcrypto -ljson-c -lz -lzstd
PG_CFLAGS   = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

.PHONY: format
format:
	clang-format -i src/*.c src/*.h
