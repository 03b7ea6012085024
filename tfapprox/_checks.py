"""Argument checks shared by every tfapprox module.

Each check returns the value normalised (``int``, ``float`` or ``bool``) or
raises `TypeError` (wrong type) or `ValueError` (wrong value) naming the
argument and the value received. Only the standard library is imported, so
the fast CLI path (`tfapprox bound`) can use them.
"""

import math
import numbers
import sys


def check_int(name, value, *, minimum=1, maximum=None, allow_none=False):
    """Validate an int ``>= minimum`` (and ``<= maximum``; not a bool); return it as ``int``.

    Booleans are refused (``True`` is an ``int`` in Python but never a width).

    >>> check_int("m_h", 4)
    4
    >>> check_int("m_h", 0)
    Traceback (most recent call last):
    ...
    ValueError: `m_h` must be a positive int. Received: m_h=0
    >>> check_int("seed", -1, minimum=0)
    Traceback (most recent call last):
    ...
    ValueError: `seed` must be a non-negative int. Received: seed=-1
    """
    if value is None and allow_none:
        return None
    what = {0: "a non-negative int", 1: "a positive int"}.get(minimum, f"an int >= {minimum}")
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"`{name}` must be {what}. Received: {name}={value!r} of type {type(value).__name__}"
        )
    if value < minimum:
        raise ValueError(f"`{name}` must be {what}. Received: {name}={value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"`{name}` must be at most {maximum}. Received: {name}={value!r}")
    return int(value)


def check_positive_int(name, value, *, maximum=None, allow_none=False):
    """`check_int` with ``minimum=1``: widths, counts, lengths."""
    return check_int(name, value, minimum=1, maximum=maximum, allow_none=allow_none)


def check_seed(name, value):
    """`check_int` in ``[0, 2**32 − 1]``: a seed (NumPy's and Keras' global seeds stop there)."""
    return check_int(name, value, minimum=0, maximum=2**32 - 1)


def check_real(name, value, *, low=None, high=None, low_open=False, high_open=False):
    """Validate a finite real number (not a bool) in a range; return a ``float``.

    ``low``/``high`` bound the value (None: unbounded), open or closed.

    >>> check_real("tol", 1e-4, low=0, low_open=True)
    0.0001
    >>> check_real("tol", 0, low=0, low_open=True)
    Traceback (most recent call last):
    ...
    ValueError: `tol` must be > 0. Received: tol=0
    >>> check_real("confidence", 1.5, low=0, high=1, low_open=True, high_open=True)
    Traceback (most recent call last):
    ...
    ValueError: `confidence` must lie in (0, 1). Received: confidence=1.5
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"`{name}` must be a real number. Received: {name}={value!r} "
            f"of type {type(value).__name__}"
        )
    if not math.isfinite(value):
        raise ValueError(f"`{name}` must be a finite number. Received: {name}={value!r}")
    bad_low = low is not None and (value <= low if low_open else value < low)
    bad_high = high is not None and (value >= high if high_open else value > high)
    if bad_low or bad_high:
        if high is None:
            rule = f"be {'>' if low_open else '>='} {low}"
        elif low is None:
            rule = f"be {'<' if high_open else '<='} {high}"
        else:
            rule = f"lie in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"`{name}` must {rule}. Received: {name}={value!r}")
    return float(value)


def check_choice(name, value, choices):
    """Validate that ``value`` is one of ``choices``; return it."""
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {choices}. Received: {name}={value!r}")
    return value


def check_bool(name, value):
    """Validate a bool (Python's or NumPy's); return it as ``bool``."""
    numpy = sys.modules.get("numpy")  # a NumPy bool implies NumPy is imported
    if isinstance(value, bool) or (numpy is not None and isinstance(value, numpy.bool_)):
        return bool(value)
    raise TypeError(f"`{name}` must be a bool. Received: {name}={value!r}")
