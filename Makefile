# Developer entry points. `make test` is the project's test command (CI runs it
# through .ci/run).
#
#   make run                           the broker on 127.0.0.1:8787 with sandbox platforms
#   make test                          fmt, clippy, cargo test against moto_server
#   make test ARGS='-p test-support'   extra arguments for cargo test
#   make emulator                      moto_server on 127.0.0.1:5000 in the foreground

.PHONY: run test emulator

run:
	cargo run -p broker-local -- $(ARGS)

test:
	scripts/test.sh $(ARGS)

emulator:
	scripts/emulator.sh $(PORT)
