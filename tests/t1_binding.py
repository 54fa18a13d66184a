"""Pure units of mount/binding.py that need libfuse's types but no mount."""

import pytest

from mount import binding

mfusepy = binding.import_mfusepy()  # CI installs fuse3

FILE = {"st_ino": 5, "st_mode": 0o100644, "st_nlink": 3, "st_uid": 1001, "st_gid": 1002,
        "st_size": 4097, "st_blocks": 16, "st_blksize": binding.IO_SIZE,
        "st_atime": 1_764_612_345_123_456_789, "st_mtime": 1, "st_ctime": 999_999_999,
        "st_rdev": 0x0801}
TRASH_DIR = {"st_ino": 7, "st_nlink": 2, "st_mode": 0o40700, "st_uid": 0, "st_gid": 0,
             "st_size": 0, "st_blocks": 0, "st_atime": 10**18, "st_mtime": 10**18,
             "st_ctime": 10**18}  # no st_rdev, no st_blksize: those stay zero
LISTED = {"st_mode": 0o40000, "st_ino": 1}


@pytest.mark.parametrize("attrs", [FILE, TRASH_DIR, LISTED])
def test_fill_stat_writes_the_bytes_mfusepy_would(attrs):
    ours, theirs = mfusepy.c_stat(), mfusepy.c_stat()
    binding.fill_stat(ours, attrs)
    mfusepy.set_st_attrs(theirs, attrs, use_ns=True)
    assert bytes(ours) == bytes(theirs) != bytes(mfusepy.c_stat())


def test_times_in_nanoseconds_split_into_seconds_and_nanoseconds():
    st = mfusepy.c_stat()
    binding.fill_stat(st, FILE)
    assert (st.st_atimespec.tv_sec, st.st_atimespec.tv_nsec) == (1_764_612_345, 123_456_789)
    assert (st.st_mtimespec.tv_sec, st.st_mtimespec.tv_nsec) == (0, 1)
