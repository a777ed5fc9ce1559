"""ecellm.infer"""
