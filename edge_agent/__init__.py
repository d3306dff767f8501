"""The edge agent: runs on the user's machine, keeps private context on the device."""
