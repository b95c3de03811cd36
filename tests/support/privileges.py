"""Running a service process as root without root's file-mode overrides."""

# Root without the capabilities that override file modes. setpriv execs the
# service in its own place; dropping them from the bounding set as well keeps
# that exec from granting them back.
_WITHOUT_OVERRIDES = "-dac_override,-dac_read_search,-fowner"
DROP_ROOT_OVERRIDES = (
    "setpriv",
    f"--inh-caps={_WITHOUT_OVERRIDES}",
    f"--bounding-set={_WITHOUT_OVERRIDES}",
)
