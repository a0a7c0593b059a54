# What a console's "filters" form stands for: conditions on size, from, to
# and subject (is / contains / starts with / ends with, and not), all of
# them or any of them, and an action.

# all of: From contains "shop", Subject does not start with "Order"
#   -> move to folder Shops
require ["fileinto", "mailbox", "copy"];
if allof (header :contains "from" "shop",
          not header :matches "subject" "Order*") {
    fileinto :create "Shops";
}

# any of: size over 10 MB, To ends with "@old.example.org"
#   -> copy to an address
if anyof (size :over 10M,
          header :matches "to" "*@old.example.org") {
    redirect :copy "archive@example.org";
}

# always -> delete (commented out: it discards everything)
# discard;
