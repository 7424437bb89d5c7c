# expect: cluster.iam.groups.ops.members: "alice" is not a member; write user:<name> or sa:<service account>.
# expect: cluster.iam.groups.ops.members lists "user:bob" twice; list it once.
{cluster.iam.groups.ops.members = ["alice" "user:bob" "user:bob"];}
