"""http_compat"""
