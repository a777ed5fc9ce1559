"""ecellm.report"""
