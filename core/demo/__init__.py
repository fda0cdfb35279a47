"""The demo: a throwaway deployment wired to the sandbox peers (``mware-iam demo``)."""
