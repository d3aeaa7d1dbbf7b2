"""The documented SQL queries (README: "Querying the results"), in a dialect that Spark SQL
and DuckDB both run unchanged over `labelqa.<table>`: in Spark after `labelqa register`, in
DuckDB after the views of `duckdb_views`. The tests run every one in both engines."""

from __future__ import annotations

from dataclasses import dataclass

from labelqa.tables import RUNS


@dataclass(frozen=True)
class Query:
    name: str
    question: str
    sql: str


_LATEST = "(SELECT max(run_date) FROM labelqa.summary WHERE dataset = 'demo')"

QUERIES = (
    Query("worst_examples_of_a_tag",
          "The 10 worst examples for the tag 'dog' in the latest run",
          f"""SELECT e.issue_rank, e.id, c.given, c.pred_prob, c.class_score,
       e.explanation.text AS explanation
FROM labelqa.class_issues c
JOIN labelqa.examples e
  ON e.dataset = c.dataset AND e.run_date = c.run_date AND e.id = c.id
WHERE c.dataset = 'demo' AND c.class_name = 'dog'
  AND c.run_date = {_LATEST}
ORDER BY c.class_score, c.id
LIMIT 10"""),
    Query("missing_tags_per_class",
          "How many tags the annotators likely forgot, per class, in the latest run",
          f"""SELECT class_name, count(*) AS missing_tags
FROM labelqa.class_issues
WHERE dataset = 'demo' AND NOT given
  AND run_date = {_LATEST}
GROUP BY class_name
ORDER BY missing_tags DESC, class_name"""),
    Query("classes_by_noise",
          "Classes from the noisiest down, in the latest run",
          f"""SELECT class_name, num_given, label_issues, inverse_label_issues,
       label_noise, inverse_label_noise
FROM labelqa.classes
WHERE dataset = 'demo' AND run_date = {_LATEST}
ORDER BY label_noise + inverse_label_noise DESC, class_index"""),
    Query("health_across_runs",
          "Overall label health of every run of the dataset",
          """SELECT run_date, num_examples, num_label_issues, overall_health_score
FROM labelqa.summary
WHERE dataset = 'demo'
ORDER BY run_date"""),
    Query("new_issues_since_previous_run",
          "Examples flagged in the latest run that the previous run did not flag",
          f"""WITH previous AS (
  SELECT max(run_date) AS run_date FROM labelqa.summary
  WHERE dataset = 'demo' AND run_date < {_LATEST}
)
SELECT cur.issue_rank, cur.id, cur.label_quality_score,
       cur.explanation.text AS explanation
FROM labelqa.examples cur
CROSS JOIN previous
LEFT JOIN labelqa.examples prev
  ON prev.dataset = cur.dataset AND prev.run_date = previous.run_date AND prev.id = cur.id
WHERE cur.dataset = 'demo' AND cur.run_date = {_LATEST}
  AND previous.run_date IS NOT NULL
  AND cur.is_label_issue AND coalesce(prev.is_label_issue, false) = false
ORDER BY cur.issue_rank"""),
)

#: Tables with a DuckDB view (every run writes its quarantine partition, with no rows when
#: nothing was rejected, so the quarantine view always has a file to read).
DUCKDB_TABLES = ("examples", "class_issues", "classes", "summary", RUNS, "quarantine")


def duckdb_views(output: str) -> str:
    """DuckDB statements that expose the Hive-partitioned Parquet as `labelqa.<table>`."""
    root = output.rstrip("/").replace("'", "''")
    statements = ["CREATE SCHEMA IF NOT EXISTS labelqa;"]
    for table in DUCKDB_TABLES:
        depth = "*/*.parquet" if table == RUNS else "*/*/*.parquet"
        statements.append(
            f"CREATE OR REPLACE VIEW labelqa.{table} AS SELECT * FROM read_parquet("
            f"'{root}/{table}/{depth}', hive_partitioning = true, union_by_name = true);")
    return "\n".join(statements)
