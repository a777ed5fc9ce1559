"""ecellm.serve"""
