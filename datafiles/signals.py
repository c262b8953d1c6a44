"""What the data files announce to the rest of the site."""

from django.dispatch import Signal

# Sent once an upload (new or replacing) has committed, with datafile and created.
datafile_stored = Signal()
# Sent before a data file is replaced or deleted, and for its page, with datafile; each receiver
# answers with the ids of the unfinished jobs that read it (the file may not change under them).
datafile_in_use = Signal()
