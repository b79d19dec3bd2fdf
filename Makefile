# Thin wrapper over meson. `make demo` and `make check` work on a fresh machine: both install
# what is missing through scripts/install-deps first.
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
PYTEST ?= /usr/bin/python3 -m pytest
FUZZ_SECONDS ?= 60
MESON_OPTS ?=

.PHONY: all deps build demo check unit asan system bench fuzz format format-check clean

all: build

deps:
	scripts/install-deps

$(BUILD)/build.ninja:
	meson setup $(BUILD) -Dwerror=true $(MESON_OPTS)

build: $(BUILD)/build.ninja
	ninja -C $(BUILD)

demo: deps build
	KISTE_BUILD=$(CURDIR)/$(BUILD) scripts/demo.sh

unit: build
	meson test -C $(BUILD) --print-errorlogs

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug

asan: $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 meson test -C $(ASAN_BUILD) --print-errorlogs

system: build
	KISTE_BUILD=$(CURDIR)/$(BUILD) $(PYTEST) tests/system

format-check:
	clang-format --dry-run -Werror $$(git ls-files '*.c' '*.h')

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

# The README's test command: unit tests (plain and sanitized), format, then the system suite,
# whose summary line ends the output.
check: deps build unit asan format-check
	KISTE_BUILD=$(CURDIR)/$(BUILD) $(PYTEST) tests/system

bench: deps build
	@for b in bench/*.sh; do echo "== $$b"; KISTE_BUILD=$(CURDIR)/$(BUILD) bash $$b || exit 1; done

$(FUZZ_BUILD)/build.ninja:
	CC=clang meson setup $(FUZZ_BUILD) -Dfuzz=true -Dbuildtype=debug

fuzz: deps $(FUZZ_BUILD)/build.ninja
	ninja -C $(FUZZ_BUILD)
	@for f in $(FUZZ_BUILD)/tests/fuzz/fuzz_*; do \
	    [ -f "$$f" ] && [ -x "$$f" ] || continue; n=$$(basename $$f); \
	    mkdir -p $(FUZZ_BUILD)/corpus/$$n; \
	    echo "== $$n ($(FUZZ_SECONDS)s)"; \
	    $$f -max_total_time=$(FUZZ_SECONDS) $(FUZZ_BUILD)/corpus/$$n tests/fuzz/corpus/$${n#fuzz_} || exit 1; \
	done

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
