"""loadkit's own servers (the mock, the chaos proxy): launched, bound, announced, guarded."""
