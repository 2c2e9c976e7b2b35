"""The `leadersboard` command line (`cli.main`): the one package that imports every component.

Nothing is imported here: small processes of this package (the guardian) start without the whole CLI."""
