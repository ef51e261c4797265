"""Benchmarks behind `theo bench ...`: they measure and print; they never assert targets."""
