# The three procmail recipes everybody has, in Sieve.
require ["fileinto", "mailbox", "variables"];

# procmail:
#   :0:
#   * ^From:.*journal@example\.org
#   Journal/
if address :is "from" "journal@example.org" {
    fileinto :create "Journal";
    stop;
}

# procmail:
#   :0
#   * ^From:.*noisy-robot@example\.net
#   /dev/null
if address :is "from" "noisy-robot@example.net" {
    discard;
    stop;
}

# procmail:
#   :0:
#   * ^Subject:.*\[invoices\]
#   Invoices/
if header :contains "subject" "[invoices]" {
    fileinto :create "Invoices";
    stop;
}

# Mailing lists into one folder each, named after the list:
# List-Id: Sieve users <sieve-users.lists.example.org>  ->  Lists/sieve-users
if header :matches "list-id" "*<*.*>*" {
    set :lower "list" "${2}";
    fileinto :create "Lists/${list}";
    stop;
}
