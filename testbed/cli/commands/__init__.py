"""One module per subcommand; each defines NAME, HELP, configure(parser) and run(args) -> int."""
