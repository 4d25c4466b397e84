"""Reading records: Pareto fronts, summary tables, figures, the HTML report, landscapes."""
