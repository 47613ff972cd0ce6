"""Attackers that measure what a skeleton dataset leaks: fitted on train only, scored on test.

data.py (sides and splits), linkage.py (same-person
verification), neural.py (retrained networks), suite.py (`run_suite`, the one entry point the
pipeline and `audit` share), report.py (audit.md and plots). The two learners (1-NN, logistic
regression) live in models/linear.py: the style-prior anonymizer uses them too.
"""
