# expect: cluster.iam.tenants."Acme" is not a valid name; use lower-case letters, digits and '-'
{cluster.iam.tenants.Acme = {};}
