# Runs every GoogleTest binary (named *Tests) as individual lit tests.
import os

import lit.formats

config.name = "forge-unit"
config.test_format = lit.formats.GoogleTest(".", "Tests")
config.test_source_root = config.forge_tools_dir
config.test_exec_root = config.forge_tools_dir
config.suffixes = []
