"""Run a user's script: the child process that runs it under capture, the parent that
starts it and reads its report, the write sandbox, the dry run of training, saved models.
"""
