"""Files in and out: MOTChallenge text (read, write, import into a project), the selection and
export files a user keeps (npz, JSON, CSV, MOT), and evaluation against ground truth."""
