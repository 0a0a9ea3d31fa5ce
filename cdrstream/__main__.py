from cdrstream.cli import main

raise SystemExit(main())
