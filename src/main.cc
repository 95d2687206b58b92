// The `strangler` binary: everything happens in the CLI (src/cli/cli.h).
#include "cli/cli.h"

int main(int argc, char** argv) { return strangler::RunCli(argc, argv); }
