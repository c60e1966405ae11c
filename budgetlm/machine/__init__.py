"""What this machine can do, measured on the device a run uses and cached under a fingerprint
of the machine: threads, training speed, precision and compilation."""
