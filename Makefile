# Thin wrapper around meson/ninja. The two commands that matter:
#   make demo   - install packages, build, run the end-to-end demo
#   make test   - install packages, build with ASan+UBSan, run every test
#   make deb    - the Debian packages openvss, libvss0, libvss-dev in $(DEB_BUILD)/
#   make bench  - bench/snapset; bench-cow, bench-apps, bench-revert, bench-cluster; bench-all runs the five
BUILD      ?= build
TEST_BUILD ?= build-test
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 20
DEB_BUILD  ?= build-deb

.PHONY: all deps build demo test fuzz bench bench-apps bench-cow bench-revert bench-cluster bench-all deb clean

all: build

deps:
	@scripts/install-deps.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD)

build: $(BUILD)/build.ninja
	ninja -C $(BUILD)

demo: deps build
	scripts/demo.sh $(BUILD)

test: deps
	@[ -f $(TEST_BUILD)/build.ninja ] || meson setup $(TEST_BUILD) -Db_sanitize=address,undefined -Db_lundef=false
	ninja -C $(TEST_BUILD)
	@[ -f $(FUZZ_BUILD)/build.ninja ] || CC=clang meson setup $(FUZZ_BUILD) -Dfuzzing=true -Db_lundef=false
	ninja -C $(FUZZ_BUILD)
	FUZZ_BUILD=$(FUZZ_BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS) tests/run-tests.sh $(TEST_BUILD)

fuzz: deps
	@[ -f $(FUZZ_BUILD)/build.ninja ] || CC=clang meson setup $(FUZZ_BUILD) -Dfuzzing=true -Db_lundef=false
	ninja -C $(FUZZ_BUILD)
	FUZZ_SECONDS=$(FUZZ_SECONDS) tests/run-fuzz.sh $(FUZZ_BUILD)

# Benchmarks print ratios against a baseline measured in the same run (docs/testing.md).
bench:
	@scripts/install-deps.sh --bench
	ninja -C $(BUILD)
	bench/run-snapset.sh $(BUILD)

bench-apps:
	@scripts/install-deps.sh --bench
	ninja -C $(BUILD)
	bench/apps.sh $(BUILD)

bench-cow:
	@scripts/install-deps.sh --bench
	ninja -C $(BUILD)
	bench/cow.sh $(BUILD)

bench-revert:
	@scripts/install-deps.sh --bench
	ninja -C $(BUILD)
	bench/revert.sh $(BUILD)

bench-cluster:
	@scripts/install-deps.sh --bench
	ninja -C $(BUILD)
	bench/cluster.sh $(BUILD)

bench-all: bench bench-cow bench-apps bench-revert bench-cluster

deb: deps
	scripts/build-deb.sh $(DEB_BUILD)

clean:
	rm -rf $(BUILD) $(TEST_BUILD) $(FUZZ_BUILD) $(DEB_BUILD)
