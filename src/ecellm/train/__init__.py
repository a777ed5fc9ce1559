"""ecellm.train"""
