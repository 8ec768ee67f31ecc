"""Error cases (placeholder, filled next)."""


def run(ctx) -> None:
    pass
