"""Reporting: figures and tables for the steps. Pure: data in, a figure or text out."""
