//! A UDP impairment proxy (loss, delay, duplication, reordering) for real-socket tests and benchmarks.
