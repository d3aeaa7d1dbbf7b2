"""Acting on an audit's findings: corrected labels, a review queue, reviewers' verdicts and
the annotators' error rates."""
