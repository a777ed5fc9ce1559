"""ecellm.evaluate"""
