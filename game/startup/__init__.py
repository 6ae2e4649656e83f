"""From the command line to what runs: flags, the resolved config, the source, the renderer."""
