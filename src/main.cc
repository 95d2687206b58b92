// The `strangler` binary: everything happens in the CLI (src/cli.h).
#include "cli.h"

int main(int argc, char** argv) { return strangler::RunCli(argc, argv); }
