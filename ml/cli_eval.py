"""Evaluation, prediction and benchmark commands (filled in below)."""

from __future__ import annotations

import argparse


def add_commands(sub) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    raise SystemExit(f"unknown command {args.command}")
