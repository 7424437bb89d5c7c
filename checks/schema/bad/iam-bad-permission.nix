# expect: cluster.iam.roles.net-editor.permissions: "net:port" is not a permission; write <service>:<kind>:<action>
# expect: cluster.iam.roles.net-editor.permissions: "Net:*:read" is not a permission
# expect: cluster.iam.roles.net-editor.permissions lists "vm:*:read" twice; list it once.
{cluster.iam.roles.net-editor.permissions = ["net:port" "Net:*:read" "vm:*:read" "vm:*:read"];}
